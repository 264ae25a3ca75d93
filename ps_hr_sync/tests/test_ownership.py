"""HR owns an employee's identity: a change made in Odoo to an employee that comes from
BambooHR is refused with BambooHR named; the integration's writes pass."""

from odoo.exceptions import UserError
from odoo.tests import Form, TransactionCase, new_test_user, tagged

from odoo.addons.ps_integration_hub.tests.common import HubCaseMixin

OWNED = ("name", "work_email", "department_id", "parent_id", "job_title")


@tagged("post_install", "-at_install")
class TestEmployeeOwnership(HubCaseMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_hub()
        cls.officer = new_test_user(cls.env, "own_hr_officer", groups="hr.group_hr_user")
        Department = cls.env["hr.department"]
        cls.digital, cls.finance = Department.create([{"name": "Digital Transformation"}, {"name": "Finance"}])
        cls.director = cls.env["hr.employee"].create({"name": "Marcus Hale"})
        cls.employee = cls.env["hr.employee"].create({
            "name": "Priya Nair", "department_id": cls.digital.id, "job_title": "Senior Consultant",
            "work_email": "priya.nair@psconsulting.example", "parent_id": cls.director.id})
        cls.env["ps.hub.binding"]._hub_bind(cls.bamboohr, "employee", "1207", cls.employee)

    def test_hr_sync_declares_its_rules(self):
        owned = self.env["ps.hub.ownership.rule"]._hub_owned_fields()["hr.employee"]
        self.assertEqual({name: (rule.owner, rule.scope) for name, rule in owned.items()},
                         dict.fromkeys(OWNED, ("bamboohr", "bound")))

    def test_an_officer_cannot_move_a_bamboohr_employee(self):
        employee = self.employee.with_user(self.officer)
        for values, label in (({"department_id": self.finance.id}, "Department"),
                              ({"job_title": "Manager"}, "Job Title"),
                              ({"parent_id": False}, "Manager"),
                              ({"work_email": "priya@elsewhere.example"}, "Work Email")):
            with self.subTest(label=label), self.assertRaises(UserError) as caught:
                employee.write(values)
            self.assertEqual(
                str(caught.exception),
                f"{label} of Employee Priya Nair is owned by BambooHR: change it in BambooHR; "
                "the integration brings the change here.")
        self.assertEqual((self.employee.department_id, self.employee.job_title), (self.digital, "Senior Consultant"))

    def test_the_integration_moves_it(self):
        self.employee.with_user(self.officer)._hub_as_integration().write({
            "department_id": self.finance.id, "job_title": "Finance Partner"})
        self.assertEqual((self.employee.department_id, self.employee.job_title), (self.finance, "Finance Partner"))

    def test_unchanged_values_and_fields_hr_does_not_own_pass(self):
        employee = self.employee.with_user(self.officer)
        employee.write({"department_id": self.digital.id, "job_title": "Senior Consultant",
                        "private_email": "priya@home.example"})
        self.assertEqual(self.employee.private_email, "priya@home.example")
        with Form(employee) as form:  # the form sends what changed, with the values it recomputed
            form.private_phone = "+44 7700 900123"
        self.assertEqual(self.employee.private_phone, "+44 7700 900123")

    def test_an_employee_not_in_bamboohr_is_odoos(self):
        contractor = self.env["hr.employee"].with_user(self.officer).create({
            "name": "Contractor", "department_id": self.digital.id})
        contractor.write({"department_id": self.finance.id, "name": "Contractor (Finance)"})
        self.assertEqual(contractor.department_id, self.finance)
