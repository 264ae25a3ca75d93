from odoo import models


class HrEmployee(models.Model):
    _inherit = "hr.employee"

    def write(self, vals):
        # hr.employee.write hands the fields of the employee's version (department, job title)
        # to hr.version before the ownership check of base.write sees them: checked here first
        self._hub_check_ownership(vals)
        return super().write(vals)
