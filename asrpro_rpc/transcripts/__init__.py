"""Transcript types, the segment sink, output formats and text clean-up."""
