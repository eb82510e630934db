"""``tocoad-train --select``: train candidate configs, score them on G's synthetic anomalies over held-out normal
images, keep the frozen baseline unless a candidate beats it by a stated margin (docs/model_selection.md)."""
