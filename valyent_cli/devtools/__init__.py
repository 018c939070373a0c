"""Tools for developing valyent (not used at run time): `python -m valyent_cli.devtools.gendocs`."""
