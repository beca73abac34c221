"""A non-editable install from the wheel, run from an unrelated folder, can init and migrate."""

import json
import os
import subprocess
import sys
import venv

import pytest

from helpers import REPO


def run(*args, **kw):
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600, **kw)
    assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.slow
def test_wheel_ships_migrations_and_works_from_anywhere(tmp_path):
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist),
        str(REPO), cwd=tmp_path)
    [wheel] = dist.glob("torchsm-*.whl")
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "torchsm/migrations/env.py" in names
    assert any(n.startswith("torchsm/migrations/versions/0001") for n in names)

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    run(str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        str(wheel))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TORCHSM_HOME")}
    env["TORCHSM_REDIS_URL"] = "off"
    env["XDG_STATE_HOME"] = str(tmp_path / "state")  # the per-user default home, here
    torchsm = str(env_dir / "bin" / "torchsm")
    init = json.loads(run(torchsm, "init", "--json", cwd=elsewhere, env=env))
    assert init["created"] and init["home"] == str(tmp_path / "state" / "torchsm")
    assert json.loads(run(torchsm, "db", "current", "--json", cwd=elsewhere, env=env))["at_head"]
    run(torchsm, "nova", "add", "helix", cwd=elsewhere, env=env)
    out = json.loads(run(torchsm, "transition", "helix", "cool", "--json", cwd=elsewhere,
                         env=env))
    assert out["to"] == "cooling"
    # the installed package, not the checkout, was used
    location = run(str(python), "-c", "import torchsm.storage.database as d; "
                   "print(d.migrations_location())", cwd=elsewhere, env=env).strip()
    assert location.startswith(str(env_dir)) and location.endswith("torchsm/migrations")
