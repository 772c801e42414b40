"""nectar-audit's tests: laid out as src/ is (evidence/, facts/<pack>/, checks/test_NN_*.py, targets/, probes/,
reports/, cloud/); the lab's helpers are in lab/, real sample files in samples/."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "tests" / "samples"
