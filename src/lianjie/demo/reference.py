"""Reference data for the demo world: places, names, calendar and the three fictional merchants.

Everything here is public general knowledge (cities and their provinces, common surname frequencies,
festival dates) or invented (merchant names and labels). Weights are rough, chosen so the demo looks
like a Chinese retail customer base, not to be statistically exact.
"""

from __future__ import annotations

import datetime
from typing import NamedTuple


class City(NamedTuple):
    """A city customers live in and stores open in; ``weight`` ~ its consumer market size."""

    name: str
    province: str
    code: str
    weight: float


CITIES: tuple[City, ...] = (
    City("上海", "上海市", "SH", 26.0),
    City("北京", "北京市", "BJ", 24.0),
    City("深圳", "广东省", "SZ", 18.0),
    City("广州", "广东省", "GZ", 18.0),
    City("成都", "四川省", "CD", 14.0),
    City("杭州", "浙江省", "HZ", 13.0),
    City("重庆", "重庆市", "CQ", 13.0),
    City("武汉", "湖北省", "WH", 11.0),
    City("南京", "江苏省", "NJ", 10.0),
    City("苏州", "江苏省", "SUZ", 10.0),
    City("西安", "陕西省", "XA", 9.0),
    City("天津", "天津市", "TJ", 9.0),
    City("长沙", "湖南省", "CS", 8.0),
    City("郑州", "河南省", "ZZ", 8.0),
    City("东莞", "广东省", "DG", 7.0),
    City("青岛", "山东省", "QD", 7.0),
    City("宁波", "浙江省", "NB", 7.0),
    City("佛山", "广东省", "FS", 6.5),
    City("合肥", "安徽省", "HF", 6.5),
    City("沈阳", "辽宁省", "SY", 6.0),
    City("济南", "山东省", "JN", 6.0),
    City("昆明", "云南省", "KM", 5.5),
    City("无锡", "江苏省", "WX", 5.5),
    City("厦门", "福建省", "XM", 5.0),
    City("福州", "福建省", "FZ", 5.0),
    City("大连", "辽宁省", "DL", 4.5),
    City("石家庄", "河北省", "SJZ", 4.5),
    City("哈尔滨", "黑龙江省", "HRB", 4.5),
    City("长春", "吉林省", "CC", 4.0),
    City("南昌", "江西省", "NC", 4.0),
    City("南宁", "广西壮族自治区", "NN", 4.0),
    City("贵阳", "贵州省", "GY", 3.5),
    City("温州", "浙江省", "WZ", 3.5),
    City("太原", "山西省", "TY", 3.0),
    City("珠海", "广东省", "ZH", 2.5),
    City("兰州", "甘肃省", "LZ", 2.5),
    City("海口", "海南省", "HK", 2.0),
    City("乌鲁木齐", "新疆维吾尔自治区", "URC", 2.0),
)

# Most frequent Chinese surnames with approximate shares (percent of the population).
SURNAMES: tuple[tuple[str, float], ...] = (
    ("王", 7.1), ("李", 7.0), ("张", 6.7), ("刘", 5.1), ("陈", 4.6), ("杨", 3.2), ("黄", 2.5),
    ("赵", 2.0), ("吴", 1.9), ("周", 1.9), ("徐", 1.5), ("孙", 1.4), ("马", 1.3), ("朱", 1.3),
    ("胡", 1.2), ("郭", 1.1), ("何", 1.0), ("林", 1.0), ("高", 1.0), ("罗", 1.0), ("郑", 0.9),
    ("梁", 0.8), ("谢", 0.8), ("宋", 0.7), ("唐", 0.7), ("许", 0.7), ("韩", 0.6), ("冯", 0.6),
    ("邓", 0.6), ("曹", 0.6), ("彭", 0.6), ("曾", 0.6), ("肖", 0.6), ("田", 0.5), ("董", 0.5),
    ("袁", 0.5), ("潘", 0.5), ("于", 0.5), ("蒋", 0.5), ("蔡", 0.5), ("余", 0.5), ("杜", 0.5),
    ("叶", 0.5), ("程", 0.5), ("苏", 0.4), ("魏", 0.4), ("吕", 0.4), ("丁", 0.4), ("任", 0.4),
    ("沈", 0.4), ("姚", 0.4), ("卢", 0.4), ("姜", 0.4), ("崔", 0.3), ("钟", 0.3), ("谭", 0.3),
    ("陆", 0.3), ("汪", 0.3), ("范", 0.3), ("金", 0.3), ("石", 0.3), ("廖", 0.3), ("贾", 0.3),
    ("夏", 0.3), ("韦", 0.3), ("付", 0.3), ("方", 0.3), ("白", 0.3), ("邹", 0.3), ("孟", 0.3),
    ("熊", 0.2), ("秦", 0.2), ("邱", 0.2), ("江", 0.2), ("尹", 0.2), ("薛", 0.2), ("段", 0.2),
    ("雷", 0.2), ("侯", 0.2), ("龙", 0.2), ("史", 0.2), ("陶", 0.2), ("黎", 0.2), ("贺", 0.2),
    ("顾", 0.2), ("毛", 0.2), ("郝", 0.2), ("龚", 0.2), ("邵", 0.2), ("万", 0.2), ("钱", 0.2),
    ("严", 0.2), ("欧阳", 0.05), ("司马", 0.02), ("上官", 0.02),
)

GIVEN_FEMALE = (
    "婷丽敏静娟艳芳娜秀英慧玲颖琳雪倩欣怡佳悦雯洁晶萍燕红霞琪"
    "瑶璐梦涵诗雨思晓露薇月嘉妍彤蕾菲欢馨蓉婉珊"
)
GIVEN_MALE = "伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宇浩凯健俊帆旭宁龙林阳晨博文轩峰建志海亮成坤昊睿哲然泽"
GIVEN_NEUTRAL = "子一嘉思雨家天安宏晓欣明梓可云清若语"

# Mainland mobile prefixes (1[3-9]x); suffixes are eight digits.
PHONE_PREFIXES: tuple[str, ...] = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "153",
    "155", "156", "157", "158", "159", "166", "170", "173", "175", "176", "177", "178", "180",
    "181", "182", "183", "185", "186", "187", "188", "189", "191", "193", "195", "198", "199",
)
#: The number cashiers type when a customer will not give one; OneID must never merge on it.
PLACEHOLDER_PHONE = "13800138000"
#: A phone that must never be generated either (an all-zero test value some POS systems send).
ZERO_PHONE = "00000000000"

#: Spring Festival (农历新年) dates; the calendar is lunar, so a table beats a formula.
SPRING_FESTIVALS: tuple[datetime.date, ...] = (
    datetime.date(2024, 2, 10),
    datetime.date(2025, 1, 29),
    datetime.date(2026, 2, 17),
    datetime.date(2027, 2, 6),
    datetime.date(2028, 1, 26),
)

# Place words for store names (invented neighbourhood-style names, no real malls or brands).
STORE_PLACES: tuple[str, ...] = (
    "滨江", "湖畔", "中心", "东城", "西城", "南湖", "北岸", "新城", "花园", "金桥", "锦绣", "翠苑",
    "星河", "云溪", "桃源", "明珠", "长乐", "和平", "文华", "青年路", "人民路", "解放路", "高新",
    "万家", "望江", "丽景", "银湖", "春晓", "海岸", "枫林",
)


class MerchantSeed(NamedTuple):
    """The fixed description of one fictional merchant (behaviour parameters live in behaviour.py)."""

    slug: str
    name: str
    short: str
    code: str
    industry: str
    #: Store types of the physical stores after the flagships, with weights.
    store_types: tuple[tuple[str, float], ...]
    flagships: int


MERCHANTS: tuple[MerchantSeed, ...] = (
    MerchantSeed("yunjin", "云锦生活百货", "云锦生活", "YJ", "department_store",
                 (("mall", 0.8), ("community", 0.2)), 2),
    MerchantSeed("qingyu-sports", "青屿运动", "青屿运动", "QY", "sportswear",
                 (("mall", 0.65), ("community", 0.35)), 3),
    MerchantSeed("zhaolu-market", "朝露社区超市", "朝露超市", "ZL", "supermarket",
                 (("community", 1.0),), 1),
)

#: The coalition points programme shared by the department store and the sportswear brand.
COALITION_CODE = "yunyu-points"
COALITION_NAME = "云屿联盟积分"
COALITION_MEMBERS: tuple[str, str] = ("yunjin", "qingyu-sports")

ONLINE_STORE_CODE = "ONLINE"
SOURCES: tuple[str, ...] = ("web", "miniprogram", "pos", "wecom")
CHANNELS: tuple[str, ...] = ("offline", "online", "miniprogram", "wecom")
PAYMENT_METHODS: tuple[str, ...] = ("wechat_pay", "alipay", "unionpay", "card", "cash")

# Short, realistic client descriptions for event contexts (no IP addresses anywhere).
WEB_USER_AGENTS: tuple[str, ...] = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; V2309A) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 Version/17.4 Safari/605.1.15",
)
PHONE_MODELS: tuple[tuple[str, str, str, str], ...] = (
    # manufacturer, model, os name, os version
    ("Apple", "iPhone15,2", "iOS", "17.5"),
    ("Apple", "iPhone14,5", "iOS", "16.7"),
    ("HUAWEI", "ALN-AL00", "HarmonyOS", "4.2"),
    ("Xiaomi", "23127PN0CC", "Android", "14"),
    ("OPPO", "PHZ110", "Android", "14"),
    ("vivo", "V2309A", "Android", "14"),
    ("HONOR", "PGT-AN10", "Android", "13"),
)
