"""The lab: a static site of the learner's own trained models, computed in the browser.

`export` writes the site from run directories; `static/` holds the page (HTML, JavaScript, CSS)
it copies as it is.
"""
