"""The pages (function-based views): reading, editing, exporting."""
