"""Thin handlers per resource: parse, await the engine, shape the answer."""
