"""Helpers shared by the test rooms (no tests here: nothing in this folder is collected)."""
