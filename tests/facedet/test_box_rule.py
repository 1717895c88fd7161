"""The readings of w_ellipse in the paper's eqs. (1)-(2) (qsim.facedet.fddb.BOX_RULES), by hand."""
import numpy as np
import pytest

from qsim.cli import main
from qsim.errors import InputError, QsimError
from qsim.facedet.fddb import BOX_RULE, BOX_RULES, ellipse_to_box, load_fddb

# major radius 70, minor 50, upright (angle pi/2), centre (300, 200)
UPRIGHT = [[70.0, 50.0, np.pi / 2, 300.0, 200.0, 1.0]]


@pytest.mark.parametrize("rule, w", [("major_radius", 70.0), ("two_minor", 100.0),
                                     ("minor_radius", 50.0), ("two_major", 140.0)])
def test_square_rules_by_hand(rule, w):
    side, cy = 1.3 * w, 200.0 + 0.26 * w
    np.testing.assert_allclose(ellipse_to_box(UPRIGHT, rule=rule),
                               [[300 - side / 2, cy - side / 2, 300 + side / 2, cy + side / 2]])


def test_major_radius_is_the_default():
    assert BOX_RULE == "major_radius" and BOX_RULES[0] == BOX_RULE
    # side 1.3 * 70 = 91, centre y 200 + 0.26 * 70 = 218.2
    np.testing.assert_allclose(ellipse_to_box(UPRIGHT), [[254.5, 172.7, 345.5, 263.7]])


def test_bbox_of_rotated_ellipses_by_hand():
    # upright: half width = minor 50, half height = major 70; alpha, beta are not used
    np.testing.assert_allclose(ellipse_to_box(UPRIGHT, alpha=9, beta=9, rule="bbox"),
                               [[250.0, 130.0, 350.0, 270.0]], atol=1e-9)
    # lying (angle 0): half width 70, half height 50
    np.testing.assert_allclose(ellipse_to_box([[70.0, 50.0, 0.0, 300.0, 200.0, 1]], rule="bbox"),
                               [[230.0, 150.0, 370.0, 250.0]])
    # 45 degrees: both half extents sqrt((70^2 + 50^2) / 2) = sqrt(3700)
    h = np.sqrt(3700.0)
    np.testing.assert_allclose(ellipse_to_box([[70.0, 50.0, np.pi / 4, 0.0, 0.0, 1]], rule="bbox"),
                               [[-h, -h, h, h]])
    # 30 degrees: hx^2 = 70^2 * 3/4 + 50^2 / 4, hy^2 = 70^2 / 4 + 50^2 * 3/4
    hx, hy = np.sqrt(4900 * 0.75 + 2500 * 0.25), np.sqrt(4900 * 0.25 + 2500 * 0.75)
    np.testing.assert_allclose(ellipse_to_box([[70.0, 50.0, np.pi / 6, 10.0, 20.0, 1]], rule="bbox"),
                               [[10 - hx, 20 - hy, 10 + hx, 20 + hy]])


def test_square_rules_ignore_the_angle():
    lying = [[70.0, 50.0, 0.3, 300.0, 200.0, 1.0]]
    for rule in ("major_radius", "two_minor"):
        np.testing.assert_allclose(ellipse_to_box(lying, rule=rule), ellipse_to_box(UPRIGHT, rule=rule))


def test_empty_and_bad_input():
    assert ellipse_to_box(np.zeros((0, 6))).shape == (0, 4)
    with pytest.raises(InputError, match="box rule must be one of major_radius.*got 'minor'"):
        ellipse_to_box(UPRIGHT, rule="minor")
    with pytest.raises(InputError, match=r"shape \(1, 3\)"):
        ellipse_to_box([[1.0, 2.0, 3.0]])
    with pytest.raises(QsimError, match="box rule"):
        load_fddb(box_rule="nope")


def test_load_fddb_box_rule(data_dir):
    major = load_fddb(data_dir / "fddb").limit(3)
    minor = load_fddb(data_dir / "fddb", box_rule="two_minor").limit(3)
    for a, b in zip(major.images, minor.images):
        np.testing.assert_array_equal(a.extra, b.extra)
        np.testing.assert_allclose(a.boxes, ellipse_to_box(a.extra))
        np.testing.assert_allclose(b.boxes, ellipse_to_box(b.extra, rule="two_minor"))


def test_cli_fddb_box_choices(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "--formats", "vj", "--fddb-box", "minor"])
    assert exc.value.code == 2
    assert "invalid choice: 'minor'" in capsys.readouterr().err
