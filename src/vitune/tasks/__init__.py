"""Vision-Flan-style instruction tasks: an expert-written instruction and output template per task."""
