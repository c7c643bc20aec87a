"""`dlclassics reproduce`: every experiment at the original protocols, and one report."""
