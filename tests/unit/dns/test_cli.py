"""`netplane dns` refuses bad flags with exit code 2 and one line naming the flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from netplane.cli.main import main


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nkind: Config\n")
    return path


@pytest.mark.parametrize(("flags", "says"), [
    (["--listen", "localhost:53"], "--listen"),
    (["--listen", "127.0.0.1"], "--listen"),
    (["--listen", "127.0.0.1:99999"], "--listen"),
    (["--health-listen", "nowhere"], "--health-listen"),
    (["--upstream", "dns.google"], "--upstream"),
    (["--upstream", "10.0.0.1:0"], "--upstream"),
    (["--zone", "bad_zone!"], "--zone"),
    (["--ttl", "-1"], "--ttl"),
    (["--cache-size", "-5"], "--cache-size"),
    (["--configmap", "no-slash"], "--configmap"),
])
def test_bad_flags_exit_2_with_one_line(kubeconfig: Path, capsys: pytest.CaptureFixture[str],
                                        flags: list[str], says: str) -> None:
    assert main(["dns", "--kubeconfig", str(kubeconfig), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("netplane dns: ") and says in err and "\n" not in err


def test_a_missing_kubeconfig_or_resolv_conf_is_named(tmp_path: Path, kubeconfig: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dns", "--kubeconfig", str(tmp_path / "nope")]) == 2
    assert "kubeconfig" in capsys.readouterr().err
    assert main(["dns", "--kubeconfig", str(kubeconfig), "--resolv-conf", str(tmp_path / "none")]) == 2
    assert "--resolv-conf" in capsys.readouterr().err


def test_a_bad_duration_is_argparses_one_line(kubeconfig: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["dns", "--kubeconfig", str(kubeconfig), "--upstream-timeout", "soon"])
    assert exc.value.code == 2 and "not a duration" in capsys.readouterr().err
