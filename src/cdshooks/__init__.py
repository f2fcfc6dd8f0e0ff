"""cdshooks: a FHIR-native CDS Hooks service that turns written medical policies into advice."""


def create_app(config=None):
    """Create the Flask app: defaults, then CDSHOOKS_* environment, then ``config``; load the registry."""
    from flask import Flask

    from cdshooks import api
    from cdshooks import auth
    from cdshooks import demo
    from cdshooks import errors
    from cdshooks import forms
    from cdshooks import http
    from cdshooks import logsafe
    from cdshooks import pages
    from cdshooks import registry
    from cdshooks import settings
    from cdshooks import store

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
