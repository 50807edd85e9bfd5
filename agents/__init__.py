"""Language agents behind one interface (:class:`agents.base.Agent`) and the LLM layer they call."""
