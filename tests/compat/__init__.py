"""Wire-compatibility tests: the exact bytes on the wire, recorded before a refactor."""
