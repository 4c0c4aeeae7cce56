"""`netplane ingress` refuses bad input with one line and a non-zero exit code."""

from __future__ import annotations

from pathlib import Path

import pytest

from netplane.cli.main import main


@pytest.mark.parametrize(("args", "message"), [
    (["--kubeconfig", "/nonexistent/kubeconfig"], "--kubeconfig /nonexistent/kubeconfig: no such file"),
    (["--listen", "nowhere"], "--listen must be ADDR:PORT"),
    (["--tls-listen", "1.2.3.4:99999"], "--tls-listen: port 99999 is out of range"),
    (["--listen", "0", "--tls-listen", "0"], "nothing to serve"),
    (["--access-log", "/nonexistent/dir/log"], "--access-log: cannot open"),
])
def test_bad_flags_exit_2_with_one_line(args: list[str], message: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    argv = ["ingress", "--kubeconfig", str(kubeconfig), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("netplane ingress: ") and message in err
    assert len(err.splitlines()) == 1


def test_a_bad_size_is_an_argument_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["ingress", "--kubeconfig", "k", "--proxy-body-size", "huge"])
    assert exc.value.code == 2
    assert "is not a size" in capsys.readouterr().err
