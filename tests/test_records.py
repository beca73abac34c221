"""torchsm.records and the hand-written checks that replaced regexes on the hot path
(issue 21, point 7): each agrees with what it replaced."""

import pickle
import re

import pytest

from torchsm.config import Home, is_quiet_hours
from torchsm.names import is_name
from torchsm.records import record


@record
class Point:
    """A point."""

    x: int
    y: int = 0

    @property
    def norm(self) -> int:
        return abs(self.x) + abs(self.y)


def test_a_record_is_a_namedtuple_with_its_methods_and_defaults():
    point = Point(3)
    assert (point, point.norm, point._fields, Point.__doc__) == ((3, 0), 3, ("x", "y"),
                                                                  "A point.")
    assert point._replace(y=-4) == Point(3, -4) and Point(1, 2)._asdict() == {"x": 1, "y": 2}
    assert pickle.loads(pickle.dumps(Point(1, 2))) == Point(1, 2)
    assert repr(Point(1, 2)) == "Point(x=1, y=2)"
    with pytest.raises(AttributeError):
        point.z = 1  # slots: no instance dict


def test_a_default_before_a_required_field_is_refused():
    with pytest.raises(TypeError, match="without a default follows"):
        @record
        class Bad:
            a: int = 1
            b: int


QUIET_HOURS = re.compile(r"^$|^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")
CLOCKS = ["00:00", "23:59", "24:00", "19:60", "9:00", "09:5", "2٣:00", "1٣:00", "12:5٣",
          "ab:cd", "12-00", "12:000"]


@pytest.mark.parametrize("text", ["", "\n", "\n\n", " ", "-", "22:00-07:00\n", "22:00-07:00 ",
                                  "22:00-07:00-", "22:00--07:00"]
                         + [f"{a}-{b}" for a in CLOCKS for b in CLOCKS[:4]])
def test_quiet_hours_are_what_the_regex_took(text):
    assert is_quiet_hours(text) == bool(QUIET_HOURS.match(text))


NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


@pytest.mark.parametrize("text", ["", "a", "0", "-a", "_a", "a-b_c", "A", "a" * 32, "a" * 33,
                                  "é", "a\n", "a b", "a.b", "ab-", "٣"])
def test_names_are_what_the_regex_took(text):
    assert is_name(text) == bool(NAME.fullmatch(text))


def test_a_home_names_its_files_as_text_and_as_paths(tmp_path):
    home = Home(str(tmp_path))
    assert (home.db_file, home.config_file) == (str(tmp_path / "torchsm.db"),
                                                str(tmp_path / "torchsm.toml"))
    assert (home.path, home.db_path, home.queue_dir) == (tmp_path, tmp_path / "torchsm.db",
                                                         tmp_path / "queue")
