"""The HTTP surface (Flask): routes, JWT trust, body limits and the call log, feedback, pages and forms."""
