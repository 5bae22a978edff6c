"""benchmarks/predict_folder.py's own parts: reading `posewheel predict`'s summary line."""

from __future__ import annotations

from serving.batch_predict import Summary
from tests.support.benchmarks import load_benchmark

folder = load_benchmark("predict_folder")


def test_the_summary_line_of_a_folder_and_of_a_video_with_tracks_is_read() -> None:
    """The figures come from the command's own summary line, whatever it adds: a video's tracks, a failed file."""
    lines = {
        Summary(images=200, persons=41, seconds=12.9).line(): ("200", "0", "41", "12.9", "15.5"),
        Summary(frames=60, persons=20, tracks=4, seconds=5.0).line(): ("0", "60", "20", "5.0", "12.0"),
        Summary(images=3, persons=1, seconds=2.0, failed={"a.jpg": "not an image"}).line(): (
            "3",
            "0",
            "1",
            "2.0",
            "1.5",
        ),
    }
    for line, figures in lines.items():
        found = folder.SUMMARY.search(f"model m-1: {line}; results in out.json")
        assert found is not None, line
        assert found.groups() == figures
