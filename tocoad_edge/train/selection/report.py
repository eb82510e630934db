"""``RUN/select/report.md``: the candidates' synthetic scores as a table, the rule and why the pick won."""
from __future__ import annotations

import json
from pathlib import Path


def _pct(v: float | None) -> str:
    return "n/a" if v is None or v != v else f"{100 * v:.1f}"


def write_report(path: Path, record: dict) -> None:
    syn, held = record["synthetic"], record["holdout"]
    lines = [
        "# tocoad-train --select",
        "",
        f"Scored on {syn['normals']} held-out normal images (never trained on; {100 * held['fraction']:.0f} % "
        f"of train/good, seed {held['seed']}) and {syn['anomalies']} synthetic anomalies of "
        f"{syn['generator']} drawn on them ({syn['per_image']} per image, rotations off, {syn['reference_size']} px). "
        "Metrics in %; recall is image level.",
        "",
        "| candidate | overrides | recall at FPR ≤ 5 % | at ≤ 1 % | image AUROC | pixel AUROC | train s | chosen |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in record["candidates"]:
        m = c["metrics"]
        lines.append(f"| {c['name']} | `{json.dumps(c['overrides'])}` | {_pct(m['recall_at_fpr_5'])} | "
                     f"{_pct(m['recall_at_fpr_1'])} | {_pct(m['image_auroc'])} | {_pct(m['pixel_auroc'])} | "
                     f"{c['train_seconds']:.0f} | {'**yes**' if c['chosen'] else ''} |")
    lines += ["", f"Rule: {record['rule']}.", "",
              f"Chosen: **{record['chosen']}**: {record['reason']}.", "",
              f"Final run: {record['final']}.", "",
              "Synthetic anomalies are not your defects: the scores rank candidates on what G draws; check the pick "
              "with `tocoad-eval` on real defective images when you have them.", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
