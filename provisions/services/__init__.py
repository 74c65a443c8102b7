"""Writes: functions named <entity>_<verb>, keyword-only, atomic, returning what they changed."""
