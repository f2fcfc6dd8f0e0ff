"""Production serving: gunicorn with gevent workers, the app loaded once in the master, reload on SIGHUP."""
