"""The console's page, script and style sheet (a package so that they ship with the wheel)."""
