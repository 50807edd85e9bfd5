"""The LLM layer: the chat-model protocol agents depend on, the HTTP client, its backends and the embedded server."""
