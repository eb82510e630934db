"""``tocoad-bench``: our runtime against a reference PatchCore pipeline, measured in the same run.

A workstation tool: the reference imports torch (the runtime never does).
"""
