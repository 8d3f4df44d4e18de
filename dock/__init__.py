"""The dock daemon at the station house: detect, pull, verify, commit, receipt."""
