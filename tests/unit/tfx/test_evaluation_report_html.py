"""The evaluation gate's HTML report: well-formed inline SVG, escaping, plot geometry."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from anomalyops_tfx.components.evaluation_gate import logic, svg_base
from anomalyops_tfx.components.evaluation_gate import report_html as rh
from anomalyops_tfx.components.evaluation_gate import svg_plots as plots

NS = {"s": svg_base.SVG_NS}
HOSTILE = "<script>alert(1)</script>"


def _svgs(page: str) -> list[ET.Element]:
    """Every inline SVG of the page, parsed as XML (fails on malformed markup)."""
    blocks = re.findall(r"<svg\b.*?</svg>", page, flags=re.S)
    return [ET.fromstring(b) for b in blocks]


def _data(labelled: bool = True, seed: int = 0, n_features: int = 3):
    rng = np.random.default_rng(seed)
    labels = np.r_[np.zeros(400, int), np.ones(20, int)]
    scores = np.abs(rng.normal(size=420)) + labels * 3.0
    contributions = np.abs(rng.normal(size=(420, n_features))) * 0.1
    contributions[labels == 1, 0] += 2.0  # the first feature drives the anomalies
    return scores, (labels if labelled else None), contributions


def _report(scores, labels, baseline=None) -> dict:
    cand = logic.evaluate(scores, labels, 0.99)
    base = None if baseline is None else logic.evaluate(baseline, labels, 0.99)
    decision = logic.decide_blessing(cand, base, margin=0.02)
    return {
        "blessed": decision.blessed,
        "rule": decision.rule,
        "reasons": decision.reasons,
        "candidate_model_uri": "/root/Trainer/model/7",
        "candidate_model_id": 7,
        "baseline_model_uri": None if base is None else "/root/Trainer/model/3",
        "baseline_model_id": None if base is None else 3,
        "candidate": cand.to_dict(),
        "baseline": None if base is None else base.to_dict(),
        "threshold": cand.threshold,
        "threshold_quantile": 0.99,
        "margin": 0.02,
        "stale_false_alarm_rate": 0.05,
        "eval_split": "eval",
        "rows_dropped_missing_features": 2,
        "spans": ["2026-11-01", "2026-11-02", "2026-11-03"],
        "training_spans": ["2026-11-01", "2026-11-03"],
        "pipeline_run_id": "run-1",
        "evaluated_at": "2026-11-03T10:00:00+00:00",
    }


def test_labelled_report_has_three_well_formed_plots_and_the_decision():
    scores, labels, contrib = _data()
    baseline = scores * 0.9 + 0.05
    report = _report(scores, labels, baseline)
    page = rh.build_html(
        report,
        scores,
        labels,
        feature_names=["a", "b", "c"],
        contributions=contrib,
        baseline_scores=baseline,
    )
    svgs = _svgs(page)
    assert [s.find("s:title", NS).text.split(" (")[0] for s in svgs] == [
        "Histogram of anomaly scores",
        "Precision-recall curve",
        "Mean feature contribution, flagged rows vs the others",
    ]
    hist = svgs[0]
    assert hist.findall(".//s:rect[@class='bar anomaly']", NS)
    assert len(svgs[1].findall(".//s:path", NS)) == 2  # candidate and baseline curves
    assert "BLESSED" in page and "2026-11-01 … 2026-11-03" in page and "3 day(s)" in page
    assert "420 (20 labelled anomalies)" in page
    assert "auc_pr" in page and "blessed baseline" in page
    flagged = int(np.sum(scores > report["threshold"]))
    assert f"flagged rows ({flagged})" in page and f"not flagged ({420 - flagged})" in page
    for reason in report["reasons"]:
        assert svg_base.esc(reason) in page
    # Offline and inert: no script, no external reference.
    assert "<script" not in page.lower() and "http://" not in page.replace(svg_base.SVG_NS, "")
    assert "https://" not in page


def test_unlabelled_report_has_no_pr_curve_and_a_single_group():
    scores, _, contrib = _data(labelled=False)
    page = rh.build_html(
        _report(scores, None), scores, None, feature_names=["a", "b", "c"], contributions=contrib
    )
    svgs = _svgs(page)
    assert len(svgs) == 2  # histogram and contributions
    assert not svgs[0].findall(".//s:rect[@class='bar anomaly']", NS)
    assert svgs[0].findall(".//s:rect[@class='bar normal']", NS)
    assert "no precision-recall curve" in page and "(no labels)" in page


def test_a_hostile_feature_name_is_escaped_everywhere():
    scores, labels, contrib = _data()
    report = _report(scores, labels)
    report["reasons"] = [f"because {HOSTILE}"]
    report["candidate_model_uri"] = f'/m/"{HOSTILE}'
    page = rh.build_html(
        report, scores, labels, feature_names=[HOSTILE, "b", "c"], contributions=contrib
    )
    assert HOSTILE not in page and "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    bars = _svgs(page)[2]
    # Parsed back, the label is the literal name (the XML parser undid the escaping).
    titles = [t.text for t in bars.iter(f"{{{svg_base.SVG_NS}}}title")]
    assert HOSTILE in titles
    # The first (largest) bar row is the feature that drives the anomalies: the hostile one.
    first_label = bars.find(".//s:text[@class='feature']", NS)
    assert first_label.find("s:title", NS).text == HOSTILE


def _threshold_x_and_bin(svg: ET.Element, threshold: float) -> tuple[float, ET.Element]:
    line = svg.find(".//s:line[@class='threshold']", NS)
    x = float(line.get("x1"))
    assert float(line.get("x2")) == x
    bars = svg.findall(".//s:rect[@class='bar normal']", NS) + svg.findall(
        ".//s:rect[@class='bar anomaly']", NS
    )
    lo_bar = max(
        (b for b in bars if float(b.get("data-lo")) <= threshold),
        key=lambda b: float(b.get("data-lo")),
    )
    return x, lo_bar


@pytest.mark.parametrize("log", [False, True])
def test_the_threshold_line_sits_inside_its_bin_at_the_right_fraction(log):
    rng = np.random.default_rng(1)
    normal = rng.lognormal(0.0, 1.0, size=2000)
    anomalies = rng.lognormal(4.0, 1.0, size=40)
    threshold = float(np.quantile(normal, 0.99))
    svg = ET.fromstring(plots.svg_histogram(normal, anomalies, threshold, log=log))
    x, bar = _threshold_x_and_bin(svg, threshold)
    lo, hi = float(bar.get("data-lo")), float(bar.get("data-hi"))
    assert lo <= threshold < hi
    left, width = float(bar.get("x")), float(bar.get("width"))
    t = (np.log10(threshold / lo) / np.log10(hi / lo)) if log else (threshold - lo) / (hi - lo)
    assert x == pytest.approx(left + t * width, abs=0.02)
    assert svg.find("s:title", NS).text.endswith("(log scale)" if log else "(linear scale)")


def test_a_linear_histogram_places_the_threshold_by_value():
    normal = np.linspace(0.0, 10.0, 101)
    svg = ET.fromstring(plots.svg_histogram(normal, None, 2.5, log=False))
    frame = svg.find("s:rect[@class='frame']", NS)
    left, width = float(frame.get("x")), float(frame.get("width"))
    x = float(svg.find(".//s:line[@class='threshold']", NS).get("x1"))
    assert x == pytest.approx(left + 0.25 * width, abs=0.01)


def test_heavy_tailed_scores_get_a_log_axis_light_tailed_a_linear_one():
    rng = np.random.default_rng(2)
    assert plots.use_log_scale(rng.lognormal(0, 2, size=1000))
    assert not plots.use_log_scale(rng.normal(5, 1, size=1000))
    assert not plots.use_log_scale(np.r_[-1.0, rng.lognormal(0, 2, size=1000)])  # log needs > 0
    svg = plots.svg_histogram(rng.lognormal(0, 2, size=1000), None, 3.0)
    assert "(log scale)" in svg


def test_a_threshold_outside_every_score_still_lies_inside_the_plot():
    svg = ET.fromstring(plots.svg_histogram(np.linspace(0, 1, 50), None, 5.0, log=False))
    frame = svg.find("s:rect[@class='frame']", NS)
    x = float(svg.find(".//s:line[@class='threshold']", NS).get("x1"))
    assert x == pytest.approx(float(frame.get("x")) + float(frame.get("width")))


def test_the_operating_point_is_precision_and_recall_at_the_threshold():
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    scores = np.array([9, 8, 7, 1, 6, 1, 1, 1, 1, 1], dtype=float)
    svg = ET.fromstring(plots.svg_pr_curve(labels, scores, 5.0))
    frame = svg.find("s:rect[@class='frame']", NS)
    fx, fy = float(frame.get("x")), float(frame.get("y"))
    fw, fh = float(frame.get("width")), float(frame.get("height"))
    dot = svg.find(".//s:circle[@class='operating-point']", NS)
    recall, precision = 3 / 4, 3 / 4  # 3 of 4 anomalies above 5; 1 false alarm
    assert float(dot.get("cx")) == pytest.approx(fx + recall * fw, abs=0.01)
    assert float(dot.get("cy")) == pytest.approx(fy + (1 - precision) * fh, abs=0.01)


def test_pr_curve_matches_average_precision():
    rng = np.random.default_rng(3)
    labels = rng.random(500) < 0.1
    scores = rng.normal(size=500) + labels * 1.5
    recall, precision = plots.pr_curve(labels, scores)
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    assert ap == pytest.approx(logic.average_precision(labels, scores))


def test_a_model_without_contributions_says_so_and_still_plots_scores():
    scores, labels, _ = _data()
    page = rh.build_html(_report(scores, labels), scores, labels, feature_names=["a", "b", "c"])
    assert len(_svgs(page)) == 2
    assert "no <code>feature_contributions</code> output" in page


def test_contributions_of_the_wrong_shape_are_not_plotted():
    scores, labels, contrib = _data()
    page = rh.build_html(
        _report(scores, labels), scores, labels, feature_names=["a", "b"], contributions=contrib
    )
    assert len(_svgs(page)) == 2 and "expected (420, 2)" in page


def test_contribution_bars_compare_flagged_and_other_rows():
    scores, labels, contrib = _data()
    threshold = _report(scores, labels)["threshold"]
    flagged = scores > threshold
    on, off = plots.mean_contributions(contrib, flagged)
    assert on[0] > 1.0 and off[0] < 0.5
    svg = ET.fromstring(plots.svg_contributions(["a", "b", "c"], on, off))
    widths = {
        k: [float(r.get("width")) for r in svg.findall(f".//s:rect[@class='bar {k}']", NS)]
        for k in ("anomaly", "normal")
    }
    assert len(widths["anomaly"]) == len(widths["normal"]) == 3
    assert widths["anomaly"][0] == max(widths["anomaly"] + widths["normal"])


def test_many_features_are_cut_to_the_largest():
    names = [f"f{i}" for i in range(60)]
    on = np.arange(60, dtype=float)
    svg = ET.fromstring(plots.svg_contributions(names, on, None))
    labels = [t.find("s:title", NS).text for t in svg.findall(".//s:text[@class='feature']", NS)]
    assert labels == [f"f{i}" for i in range(59, 59 - plots.MAX_FEATURE_BARS, -1)]


def test_non_finite_scores_and_threshold_do_not_break_the_page():
    scores, labels, contrib = _data()
    scores = scores.copy()
    scores[:3] = np.nan
    report = _report(np.nan_to_num(scores), labels)
    report["threshold"] = float("nan")
    page = rh.build_html(
        report, scores, labels, feature_names=["a", "b", "c"], contributions=contrib
    )
    svgs = _svgs(page)
    assert "3 non-finite score(s) left out" in page
    assert svgs[0].find(".//s:line[@class='threshold']", NS) is None
    geometry = {"x", "y", "width", "height", "x1", "x2", "y1", "y2", "cx", "cy"}
    for svg in svgs:
        for el in svg.iter():
            for key in geometry & set(el.attrib):
                assert np.isfinite(float(el.get(key))), (el.tag, key, el.get(key))
