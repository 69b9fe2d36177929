"""Outbound-events ETL: message event feeds -> a validated event table and campaign funnels."""

__version__ = "0.1.0"
