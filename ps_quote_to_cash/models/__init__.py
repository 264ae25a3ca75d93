from . import ps_q2c_customer_lock
from . import ps_q2c_engagement
from . import ps_q2c_hubspot_company_handler
from . import ps_q2c_hubspot_deal_handler
from . import ps_q2c_salesforce_opportunity_handler
from . import res_partner
