"""The text envs: one folder per task, each with its translator and templates."""
