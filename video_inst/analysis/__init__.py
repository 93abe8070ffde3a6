"""Analysis of decoded keyframes into plain data: DASR regions and labels, CLIP vectors, tracks.

No SQL here: :mod:`~video_inst.analysis.analyser` turns keyframes into an
:class:`~video_inst.analysis.data.AnalysisData`, and :mod:`video_inst.ingest.store` writes it.
"""
