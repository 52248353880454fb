"""Bad config files: one clear line naming the file and the key, a non-zero exit, nothing else done."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot import cli
from bot.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[1]

BAD = {
    "malformed": ("[search\nk = 5\n", r"bad\.toml: not valid TOML: .*line 1"),
    "unterminated string": ('[storage]\ndata_dir = "data\n', r"not valid TOML: .*line 2"),
    "duplicate key": ("[search]\nk = 1\nk = 2\n", r"not valid TOML: Cannot overwrite a value \(at line 3"),
    "unknown section": ("[serach]\nk = 5\n", r"unknown section \[serach\] \(known: answer, chunking, "),
    "unknown key": ("[search]\ntop_k = 5\n", r"bad\.toml: search\.top_k: unknown setting \(known: .*\bk\b"),
    "key outside a section": (
        'data_dir = "x"\n',
        r"'data_dir' is not inside a \[section\] \(it belongs under \[storage\]\)",
    ),
    "string for int": ('[search]\nk = "5"\n', r"search\.k: must be int, not str '5'"),
    "float for int": ("[search]\nk = 5.5\n", r"search\.k: must be int, not float 5\.5"),
    "bool for int": ("[chunking]\nmax_chars = true\n", r"chunking\.max_chars: must be int, not bool True"),
    "int for bool": (
        "[fetch]\nallow_private_addresses = 1\n",
        r"fetch\.allow_private_addresses: must be bool, not int 1",
    ),
    "list for str": ('[storage]\ndata_dir = ["a"]\n', r"storage\.data_dir: must be str, not list"),
    "table for int": ("[search.k]\nx = 1\n", r"search\.k: must be int, not dict"),
    "wrong list item": ('[telegram]\nadmins = ["alice"]\n', r"telegram\.admins: must be int, not str 'alice'"),
    "not a list": ("[telegram]\nadmins = 5\n", r"telegram\.admins: must be a list"),
    "bad choice": ('[search]\nindex = "ivf"\n', r"search\.index: must be one of auto, flat, hnsw, not 'ivf'"),
    "float16 word": (
        '[search]\nfloat16 = "yes"\n',
        r"search\.float16: must be one of true, false, \"auto\", not str 'yes'",
    ),
    "float16 int": ("[search]\nfloat16 = 1\n", r"search\.float16: must be one of true, false, \"auto\", not int 1"),
    "negative ef scale": (
        "[search]\nhnsw_ef_scale_passages = -1\n",
        r"search\.hnsw_ef_scale_passages: must not be negative",
    ),
    "negative": ("[fetch]\nmax_bytes = -1\n", r"fetch\.max_bytes: must not be negative"),
    "zero timeout": ("[fetch]\ntimeout = 0\n", r"fetch\.timeout: must be greater than 0"),
    "zero batch": ("[embedding]\nbatch_size = 0\n", r"embedding\.batch_size: must be greater than 0"),
    "nan": ("[fetch]\ntimeout = nan\n", r"fetch\.timeout: must be a finite number, not nan"),
    "inf": ("[search]\ndense_weight = inf\n", r"search\.dense_weight: must be a finite number, not inf"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_config_names_the_problem_in_one_line(case):
    text, pattern = BAD[case]
    with pytest.raises(ConfigError, match=pattern) as caught:
        parse_config(text, "bad.toml")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("case", ["unknown key", "string for int", "zero batch", "key outside a section"])
def test_cli_reports_bad_config_and_exits_non_zero(case, tmp_path, capsys, monkeypatch):
    text, pattern = BAD[case]
    path = tmp_path / "bad.toml"
    path.write_text(text)
    monkeypatch.setattr(cli, "open_kb", _must_not_open)
    code = cli.main(["--config", str(path), "--data-dir", str(tmp_path / "data"), "stats"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("articlebot: config error: ") and err.count("\n") == 1, err
    assert str(path) in err
    assert not (tmp_path / "data").exists()


def _must_not_open(config):
    raise AssertionError("the knowledge base must not be opened with a bad config")


def test_good_config_is_applied(tmp_path):
    path = tmp_path / "good.toml"
    path.write_text(
        '[storage]\ndata_dir = "kb"\n[search]\nk = 3\ndense_weight = 1\n[fetch]\ntimeout = 2\n'
        "allow_private_addresses = true\n[telegram]\nadmins = [1, 2]\n"
    )
    config = load_config(str(path))
    assert config.storage.data_dir == "kb" and config.search.k == 3
    assert config.search.dense_weight == 1.0 and isinstance(config.search.dense_weight, float)
    assert config.fetch.timeout == 2.0 and config.fetch.allow_private_addresses is True
    assert config.telegram.admins == [1, 2]
    assert load_config(str(path), data_dir="other").storage.data_dir == "other"


def test_missing_and_unreadable_config_files(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"config file not found: .*nope\.toml"):
        load_config(str(tmp_path / "nope.toml"))
    monkeypatch.setenv("ARTICLEBOT_CONFIG", str(tmp_path / "from-env.toml"))
    with pytest.raises(ConfigError, match=r"config file not found: .*from-env\.toml"):
        load_config(None)
    monkeypatch.delenv("ARTICLEBOT_CONFIG")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(str(tmp_path))  # a directory
    (tmp_path / "latin1.toml").write_bytes('[storage]\ndata_dir = "Müll"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(str(tmp_path / "latin1.toml"))


def _articlebot(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The installed console script when there is one (as users run it), else ``python -m bot``."""
    script = Path(sys.executable).with_name("articlebot")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "bot"]
    env = {k: v for k, v in os.environ.items() if k != "ARTICLEBOT_CONFIG"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_real_cli_process_with_bad_or_missing_config(tmp_path):
    """The installed entry point, end to end: exit status 2 and one line, for `--config bad.toml stats`."""
    (tmp_path / "bad.toml").write_text("[search]\nk = 'many'\n")
    proc = _articlebot("--config", "bad.toml", "stats", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == "articlebot: config error: bad.toml: search.k: must be int, not str 'many'\n"
    assert proc.stdout == ""
    proc = _articlebot("--config", "missing.toml", "stats", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == (
        "articlebot: config error: config file not found: missing.toml (start from a copy of config.example.toml)\n"
    )
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(("text", "value"), [('"auto"', "auto"), ("true", True), ("false", False)])
def test_float16_takes_true_false_or_auto(text, value):
    config = parse_config(f"[search]\nfloat16 = {text}\n")
    assert config.search.float16 is value or config.search.float16 == value
    assert type(config.search.float16) is type(value)
