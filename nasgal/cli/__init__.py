"""The `nasgal` command line (Typer + Rich): thin commands over the library."""
