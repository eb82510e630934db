"""The pick rule of tocoad-train --select on constructed scores."""
from tocoad_edge.train.selection.rule import Scored, pick, rule_text


def _s(name, score, seconds):
    return Scored(name, score, seconds)


def test_a_gain_within_the_margin_keeps_the_baseline():
    p = pick([_s("baseline", 0.60, 10), _s("full", 0.61, 40)], margin=0.02)
    assert p.name == "baseline"
    assert "full higher, but within the margin" in p.reason


def test_a_gain_of_at_least_the_margin_picks_the_candidate():
    p = pick([_s("baseline", 0.60, 10), _s("full", 0.62, 40)], margin=0.02)
    assert p.name == "full" and "+2.0 pt" in p.reason


def test_the_highest_eligible_score_wins_and_a_worse_candidate_never_does():
    scored = [_s("baseline", 0.50, 10), _s("full", 0.70, 40), _s("lite1", 0.75, 60), _s("big", 0.30, 5)]
    assert pick(scored, margin=0.02).name == "lite1"
    assert pick([_s("baseline", 0.50, 10), _s("big", 0.30, 5)], margin=0.0).name == "baseline"


def test_ties_go_to_the_cheaper_candidate():
    p = pick([_s("baseline", 0.50, 10), _s("full", 0.70, 40), _s("no-guide", 0.70, 25)], margin=0.02)
    assert p.name == "no-guide" and "tied with full" in p.reason
    # with no margin, a candidate that only ties the baseline loses to it: the baseline is cheaper
    assert pick([_s("baseline", 0.70, 10), _s("full", 0.70, 40)], margin=0.0).name == "baseline"


def test_the_rule_text_states_the_margin():
    assert "2.0 pt" in rule_text(0.02) and "FPR <= 5 %" in rule_text(0.02)
