"""Placeholder, replaced below."""
def add_parser(sub, parser_cls):
    pass
