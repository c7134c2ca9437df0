"""Streaming video I/O: reader, writer, raw pipes, colour, timing and audio handling."""
