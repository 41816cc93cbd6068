"""The node's web app: server-rendered pages on the domain services, one module per area.

Pages hold no business logic: each reads from or calls the same services the API uses. Every
page post is checked for forgery (`csrf`), and every response carries security headers
(`headers`).

The pages are added to the node's app by `cairn.web.pages.install`.
"""
