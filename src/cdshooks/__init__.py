"""cdshooks: a FHIR-native CDS Hooks service that turns written medical policies into advice."""


def create_app(config=None):
    """Create the Flask app: defaults, then CDSHOOKS_* environment, then ``config``; load the registry."""
    from flask import Flask

    from cdshooks import errors
    from cdshooks import logsafe
    from cdshooks import registry
    from cdshooks import settings
    from cdshooks.store import db as store
    from cdshooks.web import api
    from cdshooks.web import auth
    from cdshooks.web import demo
    from cdshooks.web import forms
    from cdshooks.web import http
    from cdshooks.web import pages

    app = Flask(__name__, instance_relative_config=True)
    logsafe.init_app(app)
    settings.init_app(app, config)
    errors.init_app(app)
    http.init_app(app)
    store.init_app(app)
    registry.init_app(app)
    auth.init_app(app)
    forms.init_app(app)
    app.register_blueprint(api.bp)
    pages.init_app(app)
    demo.init_app(app)
    return app
