"""The harness: Hydra runners (textgym-eval, -ppo, -compare, ...), their result files, reports and viewers."""
