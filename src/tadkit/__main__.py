from tadkit.cli.main import entry

entry()
