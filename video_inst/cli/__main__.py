"""``python -m video_inst.cli``: the same group as the ``video-inst`` script."""

from video_inst.cli.app import main

main(prog_name="video-inst")
