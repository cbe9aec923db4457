"""Backbone pretraining and the reference tables' design report."""
