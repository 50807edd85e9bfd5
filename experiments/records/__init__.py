"""Result files and their readers: JSONL lines, episode keys, results, transcripts."""
