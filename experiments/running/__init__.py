"""Running episode streams: the stream loop, worker processes, one episode, GC tuning, progress, the LLM session."""
