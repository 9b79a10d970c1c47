"""The progress bar: drawn on a terminal's stderr only, and never two at once."""

from __future__ import annotations

import io

from gmtl_rl.progress import progress_bar


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_is_silent_when_stderr_is_not_a_terminal(capsys):
    with progress_bar(10, 0, "train", "steps") as advance:
        advance(5)
    assert capsys.readouterr() == ("", "")


def test_only_the_outer_of_nested_bars_draws(monkeypatch):
    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stderr", terminal)
    outer_bar, inner_bar = progress_bar(10, 0, "train", "steps"), progress_bar(4, 0, "eval", "eps")
    with outer_bar as outer:
        outer(3)
        with inner_bar as inner:  # rich draws one live display at a time
            inner(4)
            assert outer_bar.bar is not None and inner_bar.bar is None
        outer(10)
    assert progress_bar._active == 0
    assert "train" in terminal.getvalue() and "eval" not in terminal.getvalue()


def test_the_bar_fits_an_80_column_terminal_with_its_count_rate_and_eta(monkeypatch):
    import re

    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stderr", terminal)
    monkeypatch.setenv("COLUMNS", "80")
    with progress_bar(5_016_000, 0, "train", "iterations") as advance:
        advance(1_234_567)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", terminal.getvalue())  # drop control codes
    lines = [line for line in re.split(r"[\r\n]", text) if line.strip()]
    assert lines and max(len(line) for line in lines) <= 80
    assert "1.23M/5.02M" in lines[-1] and "iterations/s" in lines[-1]
    assert re.search(r"\d:\d\d:\d\d ETA [\d-]:[\d-]{2}:[\d-]{2}$", lines[-1].rstrip())


def test_compact_numbers_stay_short():
    from gmtl_rl.progress import compact

    assert [compact(x) for x in (0, 9_999, 12_345, 999_999, 1_016_000, 5e9, 2e12)] == [
        "0", "9,999", "12.3k", "1M", "1.02M", "5G", "2T"
    ]  # fmt: skip
