"""The terminal UI of `lbsearch browse` (Textual). Imported only by that command, so that
`lbsearch --help` and the other commands never load Textual."""
