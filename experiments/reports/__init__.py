"""What is made from result files: the report, the viewer, replay, the contamination and cost views."""
