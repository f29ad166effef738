-- Each organisation's time zone (an IANA name): the tools' dates are whole days in it. NULL is UTC.
ALTER TABLE organizations ADD COLUMN time_zone TEXT;
