"""Coalition points (联盟积分, T-Point style): one points currency across partner merchants, with
periodic settlement between the partners and the coalition's operator. See models.py for the tables."""
