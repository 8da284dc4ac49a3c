"""CVSS scoring (pallet.scan.severity) against an implementation nobody here wrote, Red Hat's
``cvss`` package (the origin of FIRST's official calculator), over vectors generated from a
fixed seed across every metric of each version, and against FIRST's own data: the CVSS SIG's
270 MacroVector validation vectors and the CVSS v4.0 Examples document (tests/scan/cvss/README.md).
Then hostile vectors: each is a VectorError, and a record's severity comes from its next entry."""

from __future__ import annotations

import ast
import os
import random

import cvss  # a test extra (pyproject.toml), installed by scripts/install.sh
import pytest

from pallet.scan import severity
from pallet.scan.severity import VectorError, cvss2_score, cvss3_score, cvss4_score

pytestmark = pytest.mark.unit

HERE = os.path.dirname(os.path.abspath(__file__))

#: FIRST's "CVSS v4.0 Examples" (first.org/cvss/v4.0/examples): (score, vector)
FIRST_EXAMPLES = [
    (7.3, "CVSS:4.0/AV:L/AC:L/AT:P/PR:L/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"),
    (7.7, "CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:P/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"),
    (5.2, "CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:P/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:U"),
    (8.3, "CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:N/VC:H/VI:L/VA:L/SC:N/SI:N/SA:N"),
    (8.1, "CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:N/VC:H/VI:L/VA:L/SC:N/SI:N/SA:N/CR:H/IR:L/AR:L/MAV:N/MAC:H/MVC:H/MVI:L/MVA:L"),
    (4.6, "CVSS:4.0/AV:L/AC:L/AT:N/PR:N/UI:A/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N"),
    (5.1, "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:A/VC:N/VI:N/VA:N/SC:L/SI:L/SA:N"),
    (6.9, "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:L/SI:L/SA:N"),
    (5.9, "CVSS:4.0/AV:L/AC:L/AT:N/PR:H/UI:N/VC:N/VI:N/VA:N/SC:H/SI:N/SA:N"),
    (9.4, "CVSS:4.0/AV:L/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H"),
    (8.3, "CVSS:4.0/AV:P/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:H/SA:N/S:P/V:D"),
    (8.7, "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:N/VA:N/SC:N/SI:N/SA:N/E:A"),
    (10.0, "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/E:A"),
    (9.3, "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:A"),
    (6.4, "CVSS:4.0/AV:A/AC:L/AT:N/PR:N/UI:N/VC:N/VI:L/VA:N/SC:H/SI:N/SA:H"),
    (9.3, "CVSS:4.0/AV:L/AC:L/AT:N/PR:H/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/R:I"),
    (8.7, "CVSS:4.0/AV:L/AC:L/AT:P/PR:H/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/R:I"),
    (8.6, "CVSS:4.0/AV:P/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H"),
    (7.1, "CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:N/VC:H/VI:N/VA:N/SC:N/SI:N/SA:N"),
    (8.2, "CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:N/VC:H/VI:N/VA:N/SC:N/SI:N/SA:N"),
    (8.7, "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:H/SC:N/SI:N/SA:L"),
    (6.6, "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:H/SC:N/SI:N/SA:L/E:U"),
    (5.1, "CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:P/VC:N/VI:N/VA:N/SC:L/SI:L/SA:N"),
    (7.7, "CVSS:4.0/AV:N/AC:L/AT:P/PR:L/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"),
    (8.3, "CVSS:4.0/AV:L/AC:L/AT:N/PR:H/UI:N/VC:H/VI:H/VA:N/SC:N/SI:N/SA:N"),
    (5.6, "CVSS:4.0/AV:L/AC:L/AT:N/PR:H/UI:N/VC:H/VI:H/VA:N/SC:N/SI:N/SA:N/E:U"),
    (8.5, "CVSS:4.0/AV:L/AC:L/AT:N/PR:N/UI:P/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"),
    (9.2, "CVSS:4.0/AV:N/AC:L/AT:P/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:A"),
    (5.4, "CVSS:4.0/AV:P/AC:L/AT:P/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"),
    (6.9, "CVSS:4.0/AV:N/AC:L/AT:N/PR:H/UI:N/VC:H/VI:N/VA:N/SC:N/SI:N/SA:N"),
    (6.9, "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:L/SA:N"),
    (8.5, "CVSS:4.0/AV:L/AC:L/AT:N/PR:N/UI:P/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/S:P"),
    (9.4, "CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/S:P/AU:Y/V:C/RE:L"),
    (7.0, "CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/E:P/CR:L/IR:H/AR:L/MAV:L/MAC:H/MAT:N"
          "/MPR:N/MUI:N/MVC:N/MVI:H/MVA:L/MSC:N/MSI:S/MSA:L"),
    (7.4, "CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/MAV:A/MAC:H/MAT:N/MPR:L/MUI:N/MVC:L"
          "/MVI:H/MVA:H/MSC:L/MSI:S/MSA:S/CR:L/IR:H/AR:H/E:P"),
    (8.7, "CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H/MAV:N/MAC:H/MAT:N/MPR:L/MUI:N/MVC:H"
          "/MVI:H/MVA:H/MSC:H/MSI:S/MSA:H/CR:M/IR:H/AR:M/E:P"),
    (8.6, "CVSS:4.0/AV:A/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:N/SC:N/SI:N/SA:N/S:P"),
    (9.7, "CVSS:4.0/AV:A/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:N/SC:N/SI:N/SA:N/MSI:S/S:P"),
    (8.7, "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:H/SC:N/SI:N/SA:N/V:C"),
]


def _vectors(version: str, metrics: dict, base: tuple, n: int, seed: int) -> list[str]:
    """``n`` vectors of ``version``: every base metric at a random value, each other metric
    present (at any of its values, X included) with probability 0.4, in the specification's
    order or shuffled; deterministic (seeded)."""
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        parts = [f"{k}:{rnd.choice(v)}" for k, v in metrics.items() if k in base or rnd.random() < 0.4]
        if rnd.random() < 0.2:
            rnd.shuffle(parts)
        out.append("/".join(([version] if version else []) + parts))
    return out


def test_v4_scores_are_the_cvss_packages_on_generated_vectors():
    """4,000 vectors across base, threat, environmental and supplemental metrics: our CVSS-B/BT/BTE
    score and qualitative rating equal the ``cvss`` package's."""
    vectors = _vectors("CVSS:4.0", severity._V4_METRICS, severity._V4_BASE, 4000, 9)
    assert sum("/E:" in v for v in vectors) > 1000 and sum("/MSI:S" in v for v in vectors) > 100
    wrong = []
    for v in vectors:
        theirs = cvss.CVSS4(v)
        ours = severity.score("CVSS_V4", v)
        if (ours["score"], ours["severity"]) != (theirs.base_score, theirs.severity.lower()):
            wrong.append((v, ours["score"], theirs.base_score))
    assert not wrong[:5]


def test_v3_and_v2_base_scores_are_the_cvss_packages():
    v3 = _vectors("CVSS:3.1", severity._V3_METRICS, severity._V3_BASE, 1500, 31) + \
        _vectors("CVSS:3.0", severity._V3_METRICS, severity._V3_BASE, 1500, 30)
    wrong = [(v, cvss3_score(v)) for v in v3 if cvss3_score(v) != float(cvss.CVSS3(v).base_score)]
    v2 = _vectors("", severity._V2_METRICS, severity._V2_BASE, 1500, 2)
    wrong += [(v, cvss2_score(v)) for v in v2 if cvss2_score(v) != float(cvss.CVSS2(v).base_score)]
    assert not wrong[:5]
    assert severity.score("CVSS_V2", "AV:N/AC:L/Au:N/C:C/I:C/A:C") == {
        "version": "2.0", "vector": "AV:N/AC:L/Au:N/C:C/I:C/A:C", "score": 10.0, "severity": "high"}  # v2: no critical


def test_v4_scores_of_firsts_own_data():
    """The CVSS SIG's MacroVector validation vectors (threat and environmental metrics set)
    and the Examples document's worked examples give FIRST's scores."""
    with open(os.path.join(HERE, "cvss", "macro-scores")) as f:
        rows = [ast.literal_eval(line) for line in f if line.strip()]
    assert len(rows) == 270
    assert [(r["vector"], cvss4_score(r["vector"])) for r in rows] == [(r["vector"], float(r["score"])) for r in rows]
    assert [r["severity"].lower() for r in rows] == [severity.score("CVSS_V4", r["vector"])["severity"] for r in rows]
    assert [(v, cvss4_score(v)) for _, v in FIRST_EXAMPLES] == [(v, s) for s, v in FIRST_EXAMPLES]
    assert severity.cvss4_nomenclature(FIRST_EXAMPLES[2][1]) == "CVSS-BT"
    assert severity.cvss4_nomenclature(FIRST_EXAMPLES[4][1]) == "CVSS-BE"
    assert severity.cvss4_nomenclature(FIRST_EXAMPLES[33][1]) == "CVSS-BTE"
    assert severity.cvss4_nomenclature(FIRST_EXAMPLES[32][1]) == "CVSS-B"  # supplemental only


GOOD4 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"


@pytest.mark.parametrize("vector, why", [
    (GOOD4 + "/XX:Y", "unknown metric 'XX'"),
    (GOOD4 + "/AV:L", "duplicate metric AV"),
    (GOOD4.replace("/AT:N", ""), "missing base metric AT"),
    ("CVSS:4.0/AV:N/AC:L", "missing base metrics AT, PR, UI, VC, VI, VA, SC, SI, SA"),
    (GOOD4.replace("VC:H", "VC:Q"), "VC:Q is not a value of VC (H, L, N)"),
    (GOOD4 + "/E:X/E:A", "duplicate metric E"),
    (GOOD4.replace("SI:N", "SI:S"), "SI:S is not a value of SI"),  # Safety is MSI's only
    (GOOD4 + "/", "'' is not METRIC:VALUE"),
    (GOOD4.replace("AV:N", "AV"), "'AV' is not METRIC:VALUE"),
    (GOOD4.replace("AV:N", "av:n"), "unknown metric 'av'"),
    (GOOD4.replace("CVSS:4.0", "CVSS:4.1"), "does not start with CVSS:4.0/"),
    (GOOD4[9:], "does not start with CVSS:4.0/"),
    ("", "does not start with CVSS:4.0/"),
    (GOOD4 + "/S:N" * 200, "longer than 512 characters"),
    (None, "not a string"),
    (["CVSS:4.0"], "not a string"),
])
def test_bad_v4_vectors_are_refused(vector, why):
    with pytest.raises(VectorError) as e:
        severity.score("CVSS_V4", vector)
    assert why in str(e.value)


def test_bad_v3_and_v2_vectors_are_refused():
    for kind, vector, why in [
            ("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H", "missing base metric A"),
            ("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/A:L", "duplicate metric A"),
            ("CVSS_V3", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:X/C:H/I:H/A:H", "S:X is not a value of S"),
            ("CVSS_V3", "CVSS:3.2/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "does not start with CVSS:3.0/ or CVSS:3.1/"),
            ("CVSS_V2", "AV:N/AC:L/Au:N/C:P/I:P/A:P/Q:1", "unknown metric 'Q'"),
            ("CVSS_V5", GOOD4, "not a CVSS type")]:
        with pytest.raises(VectorError) as e:
            severity.score(kind, vector)
        assert why in str(e.value), (vector, str(e.value))
    # the order of metrics is not checked (published records do not always keep it), a
    # parenthesised v2 vector (NVD's old form) is one
    assert cvss4_score("CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:N/VC:H/SC:N/VI:H/SI:N/VA:H/SA:N") == \
        cvss4_score("CVSS:4.0/AV:N/AC:L/AT:N/PR:L/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N") == 8.7
    assert cvss2_score("(AV:N/AC:L/Au:N/C:P/I:P/A:P)") == 7.5


def test_a_record_takes_its_severity_from_its_next_valid_entry():
    """A bad v4 vector is a warning naming the entry and why; the v3 vector gives the severity;
    with nothing valid left, ``unknown``. A database's word wins over CVSS (the CVSS score is
    still returned for the reports); an affected entry's own severity list before the record's."""
    said = []
    rec = {"severity": [{"type": "CVSS_V4", "score": GOOD4 + "/AV:L"},
                        {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N"}]}
    sev, c = severity.of_record(rec, {}, said.append)
    assert (sev, c["version"], c["score"]) == ("medium", "3.1", 5.3)
    assert said == [f"severity[0] CVSS_V4 '{GOOD4}/AV:L': duplicate metric AV"]
    said.clear()
    rec = {"severity": [{"type": "CVSS_V4", "score": 42}, {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N"},
                        "junk", {"type": "CVSS_V2"}]}
    assert severity.of_record(rec, {}, said.append) == ("unknown", None)
    assert said == ["severity[0] CVSS_V4 score: not a string",
                    "severity[1] CVSS_V3 'CVSS:3.1/AV:N': missing base metrics AC, PR, UI, S, C, I, A",
                    "severity[3] CVSS_V2 score: not a string"]
    rec = {"severity": [{"type": "CVSS_V4", "score": GOOD4}], "database_specific": {"severity": "LOW"}}
    sev, c = severity.of_record(rec, {}, said.append)
    assert (sev, c["score"], c["severity"]) == ("low", 9.3, "critical")
    aff = {"severity": [{"type": "CVSS_V4", "score": "CVSS:4.0/AV:P/AC:H/AT:P/PR:H/UI:A/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N"}]}
    assert severity.of_record({"severity": [{"type": "CVSS_V4", "score": GOOD4}]}, aff)[0] == "low"
    no_impact = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N"
    assert severity.of_record({"severity": [{"type": "CVSS_V4", "score": no_impact}]}, {})[0] == "none"
    assert severity.rank("none") < severity.rank("unknown") < severity.rank("low")
