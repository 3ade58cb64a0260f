"""Raw platform exports in, one trustworthy row per subscriber out."""
