"""The one progress-bar style: tqdm on stderr, quiet when disabled, and in a
log (stderr not a terminal) drawn only at the start and at the end."""
import time

from bytepiece.progress import progress_bar


def test_not_a_terminal_gets_the_start_and_the_final_line_only(capsys):
    with progress_bar("work", total=3000) as bar:
        for _ in range(3):
            bar.update(1000)
            time.sleep(0.12)  # longer than a terminal's redraw interval
    err = capsys.readouterr().err
    draws = [part for part in err.replace("\r", "\n").split("\n") if part.startswith("work")]
    assert len(draws) == 2, err
    assert "100%" in draws[-1] and "3.00k/3.00k" in draws[-1] and "B/s" in draws[-1]


def test_items_and_disabled(capsys):
    with progress_bar("prune", unit="rounds") as bar:
        bar.update(2)
    assert "prune: 2 rounds" in capsys.readouterr().err
    with progress_bar("prune", unit="rounds", enabled=False) as bar:
        bar.update(2)
    assert capsys.readouterr().err == ""
