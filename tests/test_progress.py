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
