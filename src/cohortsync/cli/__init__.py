"""Thin typer commands: parse options, call the package, print. No logic here."""
