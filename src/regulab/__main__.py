from regulab.cli import entry_point

entry_point()
